"""`python -m convscope` is the `convscope` command."""

from convscope.cli import run_command

run_command()
