"""The Streamlit glue the pages share: the access gate, the frame, widgets. Pages and this
package reach agent_core through agent_core.api only."""
