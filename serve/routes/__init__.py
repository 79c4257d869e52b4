"""The HTTP routes, one module per concern: tagging, reviews, health and metrics, the page."""
