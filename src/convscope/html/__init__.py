"""convscope's HTML pages: the run report and the comparison of runs.

    from convscope.html.report import build_run_report           # RUN/report.html from a run folder
    from convscope.html.compare_page import write_compare_html   # compare.html from compare_runs(...)
    from convscope.html.notebook import build_report             # the report of a model trained in a notebook

render.py holds the Jinja2 environment and the inline PNG figures both pages
use; facts.py turns a run's numbers into the report's facts and tables;
templates/ holds the pages and their shared style sheet. Nothing is imported
here, so importing one module does not load the others.
"""
