"""The docs pages' generator (``python -m docs``, ``docs.build``); the pages themselves are Markdown files here."""
