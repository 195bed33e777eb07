"""Postmark webhooks: one JSON object per POST, shape and time field chosen by ``RecordType``.

Time field: ``DeliveredAt`` (Delivery), ``BouncedAt`` (Bounce, SpamComplaint), ``ReceivedAt``
(Open, Click), ``ChangedAt`` (SubscriptionChange); offsets vary (``Z``, ``-04:00``, 7-digit
fractions). When a record carries no time (some Bounce variants), the delivery's receive time
is used. Only bounces and spam complaints carry an ``ID``; for the other records the dedup key is
a documented composite: ``pm:`` + md5 of RecordType, MessageID, recipient and the time field as
sent (a retried delivery gives the same key; two opens at different times differ).
Bounce ``Type``: HardBounce/BadEmailAddress/ManuallyDeactivated hard, Blocked/ISPBlock/SpamNotification
block, Unsubscribe an unsubscribe, SpamComplaint a spam report, the rest (SoftBounce, Transient,
DnsError, AutoResponder…) soft. SubscriptionChange: ``SuppressSending`` false is a resubscribe;
true is an unsubscribe when the reason is ManualSuppression, else a suppression.
"""

SQL = """
WITH objs AS (
  SELECT *, body->>'RecordType' AS record, body->>'Type' AS btype FROM deliveries WHERE provider = 'postmark'
), fields AS (
  SELECT *,
    CASE record WHEN 'Delivery' THEN body->>'DeliveredAt' WHEN 'Bounce' THEN body->>'BouncedAt'
                WHEN 'SpamComplaint' THEN body->>'BouncedAt' WHEN 'Open' THEN body->>'ReceivedAt'
                WHEN 'Click' THEN body->>'ReceivedAt' WHEN 'SubscriptionChange' THEN body->>'ChangedAt' END AS time_text,
    CASE record
      WHEN 'Delivery' THEN 'delivered'
      WHEN 'Open' THEN 'open'
      WHEN 'Click' THEN 'click'
      WHEN 'SpamComplaint' THEN 'spam_report'
      WHEN 'Bounce' THEN CASE btype WHEN 'Unsubscribe' THEN 'unsubscribe' WHEN 'SpamComplaint' THEN 'spam_report'
                                    ELSE 'bounce' END
      WHEN 'SubscriptionChange' THEN CASE
        WHEN NOT coalesce(try_cast(body->>'SuppressSending' AS BOOLEAN), false) THEN 'resubscribe'
        WHEN body->>'SuppressionReason' = 'ManualSuppression' THEN 'unsubscribe'
        ELSE 'suppressed' END
      END AS event_type
  FROM objs
)
SELECT source_file, source_line, 1::BIGINT AS event_index, received_at,
  'postmark' AS provider,
  CASE WHEN body->>'ID' IS NOT NULL THEN 'pm-' || (body->>'ID')
       ELSE 'pm:' || md5(concat_ws('|', record, body->>'MessageID', coalesce(body->>'Recipient', body->>'Email'), time_text)) END AS event_id,
  body->>'MessageID' AS provider_message_id,
  event_type,
  record || coalesce('/' || btype, '') AS provider_event_type,
  coalesce(try_cast(time_text AS TIMESTAMPTZ), received_at) AS occurred_at,
  coalesce(body->>'Recipient', body->>'Email') AS recipient,
  body->>'OriginalLink' AS url,
  CASE WHEN event_type <> 'bounce' THEN NULL
       WHEN btype IN ('HardBounce', 'BadEmailAddress', 'ManuallyDeactivated') THEN 'hard'
       WHEN btype IN ('Blocked', 'ISPBlock', 'SpamNotification') THEN 'block'
       ELSE 'soft' END AS bounce_class,
  false AS is_machine_open,
  body->>'UserAgent' AS user_agent,
  body->'Geo'->>'IP' AS ip,
  CASE WHEN nullif(body->>'Tag', '') IS NULL THEN []::VARCHAR[] ELSE [body->>'Tag'] END AS tags,
  body::VARCHAR AS payload,
  CASE WHEN json_type(body) <> 'OBJECT' THEN 'Postmark body is not a JSON object'
       WHEN record IS NULL THEN 'Postmark record without RecordType'
       WHEN event_type IS NULL THEN 'unknown Postmark RecordType ' || record
       WHEN body->>'MessageID' IS NULL THEN 'Postmark record without MessageID'
       WHEN coalesce(try_cast(time_text AS TIMESTAMPTZ), received_at) IS NULL THEN 'Postmark record without a readable time'
       END AS reject_reason,
  line
FROM fields
"""
