"""Provider webhook events: parsing SendGrid, Postmark and Resend deliveries into one event model."""
