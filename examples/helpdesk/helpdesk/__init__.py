"""A two-model helpdesk on satellites: the application of the README's first-day walk."""
