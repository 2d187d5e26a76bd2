"""engine: describe apps, webhooks, WebSockets and tasks in YAML; validate, compile and run them.

Kept light on purpose: every generated app imports it.
"""

__version__ = "0.1.0"
