//! PSA systems: tickets, contacts, internal notes and inbound webhooks.
