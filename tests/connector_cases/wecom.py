from tests.connector_cases import ConnectorCase

CASE = ConnectorCase(
    platform="wecom",
    message_table="wecom__messages",
    message_id_sql="cast(replace(payload->>'msgid', 'from_msgid_', '') as bigint)",
)
