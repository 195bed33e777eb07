"""Resend webhooks (delivered by Svix): one JSON object per POST.

The event time is the top-level ``created_at`` (``data.created_at`` is when the email was
created). ``tags`` is an object (``{"k": "v"}``) or a list of ``{"name", "value"}``: both become
``"k:v"``. ``to`` entries may be ``"Name <addr>"``. Dedup key: the ``svix-id`` header; for a
delivery recorded without headers, ``rs:`` + md5 of the body. Bounces: ``Permanent`` (or a message saying hard bounce) hard,
``Transient``/``Undetermined`` soft; a bounce whose subtype or message says the address is
suppressed is ``dropped`` (not attempted), as SendGrid's ``dropped``.
"""

EVENT_MAP = {
    "email.sent": "processed", "email.delivered": "delivered", "email.delivery_delayed": "deferred",
    "email.bounced": "bounce", "email.complained": "spam_report", "email.opened": "open",
    "email.clicked": "click", "email.failed": "failed", "email.suppressed": "dropped",
}

SQL = """
WITH objs AS (
  SELECT *, body->>'type' AS rtype, body->'data' AS data FROM deliveries WHERE provider = 'resend'
), fields AS (
  SELECT *,
    CASE WHEN rtype = 'email.bounced' AND (data->'bounce'->>'subType' = 'Suppressed'
                                           OR coalesce(data->'bounce'->>'message', '') ILIKE '%suppress%')
         THEN 'dropped' ELSE map_extract(MAP {EVENT_MAP}, rtype)[1] END AS event_type,
    CASE json_type(data, '$.to') WHEN 'ARRAY' THEN data->'to'->>0 ELSE data->>'to' END AS to_text,
    CASE json_type(data, '$.tags')
      WHEN 'OBJECT' THEN list_transform(json_keys(data->'tags'), lambda k: k || ':' || json_extract_string(data->'tags', '$."' || k || '"'))
      WHEN 'ARRAY' THEN list_transform(json_extract(data->'tags', '$[*]'), lambda t: (t->>'name') || ':' || (t->>'value'))
      ELSE []::VARCHAR[] END AS tag_list
  FROM objs
)
SELECT source_file, source_line, 1::BIGINT AS event_index, received_at,
  'resend' AS provider,
  coalesce(headers->>'svix-id', 'rs:' || md5(body::VARCHAR)) AS event_id,
  data->>'email_id' AS provider_message_id,
  event_type,
  rtype AS provider_event_type,
  try_cast(body->>'created_at' AS TIMESTAMPTZ) AS occurred_at,
  coalesce(nullif(regexp_extract(to_text, '<([^>]+)>', 1), ''), to_text) AS recipient,
  data->'click'->>'link' AS url,
  CASE WHEN event_type <> 'bounce' THEN NULL
       WHEN data->'bounce'->>'type' = 'Permanent' OR coalesce(data->'bounce'->>'message', '') ILIKE '%hard bounce%' THEN 'hard'
       ELSE 'soft' END AS bounce_class,
  false AS is_machine_open,
  data->'click'->>'userAgent' AS user_agent,
  data->'click'->>'ipAddress' AS ip,
  tag_list AS tags,
  body::VARCHAR AS payload,
  CASE WHEN json_type(body) <> 'OBJECT' THEN 'Resend body is not a JSON object'
       WHEN rtype IS NULL THEN 'Resend event without type'
       WHEN event_type IS NULL THEN 'unknown Resend event type ' || rtype
       WHEN data->>'email_id' IS NULL THEN 'Resend event without data.email_id'
       WHEN try_cast(body->>'created_at' AS TIMESTAMPTZ) IS NULL THEN 'Resend event without a readable created_at'
       END AS reject_reason,
  line
FROM fields
"""
