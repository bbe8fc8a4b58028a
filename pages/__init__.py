"""The dashboard's pages, one thin view per file (see app.py and dashboard/shell.py)."""
