"""reconcile: keep a shop's orders and its Stripe money in agreement."""

__version__ = "0.1.0"
