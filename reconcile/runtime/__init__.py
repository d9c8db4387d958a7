"""What every I/O layer may use and that uses none of them: logs, redaction, stop requests, progress, memory."""
