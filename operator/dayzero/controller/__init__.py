"""kopf handlers, one module per kind; each is a thin trigger for one idempotent reconcile."""
