import pandas as pd

from connector_cases import ConnectorCase


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """WeCom has no conversation id: the warehouse names a session after its first message."""
    first_message = fct["conversation_id"].str.removeprefix("wecom:s:from_msgid_").astype(int)
    by_message = sim_data["messages"].set_index("message_id")["conversation_id"]
    return pd.Series(by_message.loc[first_message].to_numpy(), index=fct.index)


CASE = ConnectorCase(
    platform="wecom",
    message_table="wecom__messages",
    message_id_sql="cast(replace(payload->>'msgid', 'from_msgid_', '') as bigint)",
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,  # send_time is unix seconds
    # ratings come from the admin console (the API has none), on the 1-5 scale itself; dbt
    # attaches each to the customer's latest conversation started at or before it
    has_ratings=True,
    expected_csat=lambda csat: csat,
)
