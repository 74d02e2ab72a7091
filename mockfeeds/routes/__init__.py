"""The simulated market's HTTP routes, one module per concern; :mod:`mockfeeds.app` mounts them."""
