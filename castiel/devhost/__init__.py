"""The local dev host: runs ``function_app.py``'s functions without the Azure Functions runtime (DESIGN §9)."""
