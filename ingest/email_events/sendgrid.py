"""SendGrid Event Webhook: a JSON array of events per POST.

Quirks handled: ``timestamp`` in unix seconds, sometimes milliseconds or a string; ``category``
a string or an array; ``sg_message_id`` is the send's X-Message-Id plus a ``.filter…`` suffix
(the X-Message-Id itself may contain dots); ``sg_machine_open`` marks privacy-proxy opens;
``bounce`` events with ``type: blocked`` are blocks, 4.x.x statuses soft, the rest hard.
A single object instead of an array (as in SendGrid's marketing-campaign examples) is taken as
a batch of one. Dedup key: ``sg_event_id``; for the documentation examples that lack it,
``sg:`` + md5 of the event's JSON (a retried delivery repeats the same JSON, hence the same key).
When ``sg_message_id`` has no X-Message-Id part (it starts with ``filter``), the message id
comes from ``smtp-id``.
"""

EVENT_MAP = {
    "processed": "processed", "delivered": "delivered", "deferred": "deferred", "bounce": "bounce",
    "dropped": "dropped", "open": "open", "click": "click", "spamreport": "spam_report",
    "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe", "group_resubscribe": "resubscribe",
}

SQL = """
WITH batches AS (
  SELECT *, CASE json_type(body) WHEN 'ARRAY' THEN json_extract(body, '$[*]') WHEN 'OBJECT' THEN [body] END AS evs
  FROM deliveries WHERE provider = 'sendgrid'
), events AS (
  SELECT b.source_file, b.source_line, b.received_at, b.line,
         json_type(b.body) AS body_type,
         unnest(CASE WHEN len(b.evs) > 0 THEN b.evs ELSE [NULL::JSON] END) AS ev,
         unnest(CASE WHEN len(b.evs) > 0 THEN generate_series(1, len(b.evs)) ELSE [1] END) AS event_index
  FROM batches b
), fields AS (
  SELECT *,
    lower(ev->>'event') AS sg_event,
    CASE json_type(ev, '$.timestamp')
      WHEN 'VARCHAR' THEN coalesce(try_cast(ev->>'timestamp' AS DOUBLE), epoch(try_cast(ev->>'timestamp' AS TIMESTAMPTZ)))
      WHEN 'NULL' THEN NULL
      ELSE try_cast(ev->>'timestamp' AS DOUBLE) END AS ts_num
  FROM events
)
SELECT source_file, source_line, event_index, received_at,
  'sendgrid' AS provider,
  coalesce(ev->>'sg_event_id', 'sg:' || md5(ev::VARCHAR)) AS event_id,
  CASE WHEN ev->>'sg_message_id' IS NULL OR ev->>'sg_message_id' LIKE 'filter%'
       THEN nullif(regexp_extract(ev->>'smtp-id', '^<?([^@>]+)', 1), '')
       ELSE regexp_replace(ev->>'sg_message_id', '\\.(filter|recvd).*$', '') END AS provider_message_id,
  map_extract(MAP {EVENT_MAP}, sg_event)[1] AS event_type,
  sg_event AS provider_event_type,
  CASE WHEN ts_num IS NULL THEN NULL
       WHEN ts_num > 100000000000 THEN to_timestamp(ts_num / 1000.0)
       ELSE to_timestamp(ts_num) END AS occurred_at,
  ev->>'email' AS recipient,
  ev->>'url' AS url,
  CASE WHEN sg_event <> 'bounce' THEN NULL
       WHEN ev->>'type' = 'blocked' THEN 'block'
       WHEN coalesce(ev->>'status', '') LIKE '4%' THEN 'soft'
       ELSE 'hard' END AS bounce_class,
  sg_event = 'open' AND coalesce(try_cast(ev->>'sg_machine_open' AS BOOLEAN), false) AS is_machine_open,
  ev->>'useragent' AS user_agent,
  ev->>'ip' AS ip,
  CASE json_type(ev, '$.category')
    WHEN 'ARRAY' THEN from_json(ev->'category', '["VARCHAR"]')
    WHEN 'VARCHAR' THEN [ev->>'category']
    ELSE []::VARCHAR[] END AS tags,
  ev::VARCHAR AS payload,
  CASE WHEN body_type NOT IN ('ARRAY', 'OBJECT') THEN 'SendGrid body is not a JSON array of events'
       WHEN ev IS NULL THEN 'SendGrid body is an empty array'
       WHEN json_type(ev) <> 'OBJECT' THEN 'SendGrid event is not a JSON object'
       WHEN sg_event IS NULL THEN 'SendGrid event without event'
       WHEN map_extract(MAP {EVENT_MAP}, sg_event)[1] IS NULL THEN 'unknown SendGrid event ' || sg_event
       WHEN ts_num IS NULL THEN 'SendGrid event without a readable timestamp'
       END AS reject_reason,
  line
FROM fields
"""
