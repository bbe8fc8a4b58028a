"""`python -m dashboard.serve [streamlit options]`: the dashboard's server, as `up` starts it.

The same as `streamlit run app.py [options]`, with one difference: Streamlit treats an app
that has a `pages/` folder as an old-style multipage app until some session runs
`st.navigation`, so a deep link opened first (an approval link, right after a restart)
would show bare file names in the sidebar. Here the app's own navigation holds from the
first request.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def main(options: list[str]) -> None:
    """Serve until stopped. Ctrl-C at any moment, loading included (Streamlit's import takes
    a second), stops it quietly: `up` says the runtime stopped."""
    try:
        from click.exceptions import Abort
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.web import cli

        PagesManager.uses_pages_directory = False
        sys.argv = ["streamlit", "run", str(APP), *options]
        cli.main(standalone_mode=False)  # click would print "Aborted!" on Ctrl-C
    except (KeyboardInterrupt, Abort):
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1:])
