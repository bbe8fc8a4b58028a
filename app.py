"""The dashboard: `streamlit run app.py`, or `python -m agent_core up` with a worker.

Navigation, the access gate and the sidebar live in dashboard/shell.py; each page is a
thin view in pages/ that calls agent_core through agent_core.api.
"""

from dashboard.shell import run_app

run_app()
