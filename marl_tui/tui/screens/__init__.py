"""The app's screens: picker, dashboard, help."""
