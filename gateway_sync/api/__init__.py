"""The admin console's REST API (/api/v1/console/): routes, targets, canaries, guardrail
policies, their rules and attachments. Platform staff only."""
