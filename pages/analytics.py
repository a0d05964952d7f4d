"""The Analytics page: everything Spindle has processed, from the store."""
import datetime as dt

import streamlit as st

from streamlit_app import analytics, widgets

door = widgets.door()
who = widgets.current_identity()
widgets.page_header("Analytics", ("Everything Spindle has processed" if who.is_admin else "Everything you have processed")
                    + ": items per day, failures and their reasons, processing times and throughput, from the store.")
cols = st.columns(2)
since = cols[0].date_input("Since", value=dt.date.today() - dt.timedelta(days=30))
kinds = cols[1].multiselect("Pages", list(analytics.PAGE_KINDS), default=list(analytics.PAGE_KINDS))


@st.cache_data(show_spinner="Building charts…", max_entries=8)
def charts(owner: str, version: tuple, since: dt.date, kinds: tuple[str, ...]):
    return door.analytics(who, since, kinds)  # the owner is in the cache key: nobody is served another's charts


numbers, figures, empty = charts(f"{who.owner_id}:{who.is_admin}", door.analytics_version(who), since, tuple(kinds))
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
