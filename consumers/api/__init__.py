"""REST API of the consumers app: apps and their keys, subscriptions (both sides) and
the plans products offer. Thin views over consumers.services and consumers.selectors."""
