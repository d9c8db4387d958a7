"""MongoDB storage: connection, orders, repairs and their audit, open items, indexes, run history and watermark."""
