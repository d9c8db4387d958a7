"""The demo and the test stand-ins: a Stripe stand-in, an embedded MongoDB wire-protocol server, the
demo shop's seeder and the `reconcile demo` command. Nothing on the cron path imports this package."""
