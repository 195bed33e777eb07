"""The HTTP receiver of provider webhooks (`crm-warehouse webhooks serve`)."""
