"""Running the job: one invocation (lease, window plan, sub-windows, email, retention), one window,
re-checks of open items, stopping on a signal, progress on a terminal."""
