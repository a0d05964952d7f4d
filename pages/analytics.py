"""The Analytics page: everything Spindle has processed, from the store."""
import datetime as dt

import streamlit as st

from streamlit_app import analytics, widgets

widgets.page_header("Analytics", "Everything Spindle has processed: items per day, failures and their reasons, "
                                 "processing times and throughput, from the store.")
services = widgets.get_services()
cols = st.columns(2)
since = cols[0].date_input("Since", value=dt.date.today() - dt.timedelta(days=30))
kinds = cols[1].multiselect("Pages", list(analytics.PAGE_KINDS), default=list(analytics.PAGE_KINDS))


@st.cache_data(show_spinner="Building charts…", max_entries=8)
def charts(version: tuple, since: dt.date, kinds: tuple[str, ...]):
    activity = analytics.load_activity(services.store, since, kinds)
    return analytics.summary(activity), analytics.build_figures(activity, services.manager), activity.empty


numbers, figures, empty = charts(analytics.data_version(services.store), since, tuple(kinds))
if empty:
    st.info("Nothing processed yet. Run a batch on the Validation, Audio, Image or Text page, or a benchmark on "
            "the Performance page, and its figures appear here.")
top = st.columns(4)
top[0].metric("Jobs", numbers["jobs"])
top[1].metric("Items", f"{numbers['items']:,}")
top[2].metric("Failed items", f"{numbers['failed']:,}")
top[3].metric("Success rate", "—" if numbers["success_rate"] is None else f"{numbers['success_rate']:.1%}")
names = list(figures)
for row in range(0, len(names), 2):
    pair = st.columns(2)
    for col, name in zip(pair, names[row:row + 2]):
        col.plotly_chart(figures[name], key=f"analytics_{name}")
