"""The pure decision: frames in, frames out, no I/O. Column definitions, matching, classifying, judging
refunds and disputes, balance totals."""
