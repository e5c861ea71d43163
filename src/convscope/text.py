"""Text helpers shared by every stage: folder-name slugs.

    from convscope.text import slugify
    slugify("folder:my photos/")      # 'folder-my-photos'
"""


def slugify(text: str, fallback: str) -> str:
    """``text`` with every character but letters, digits, '-' and '_' turned into '-'; ``fallback`` if nothing is left."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or fallback
