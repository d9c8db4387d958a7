"""Stripe access: the client and its errors, request budget, page slicing, and what a window pulls.

Everything here talks to Stripe through the official SDK; nothing here decides an outcome.
"""
