"""The Textual app: a scenario picker and a live training dashboard.

Nothing here is imported by the trainer; `launch.launch_app` is the CLI's entry point and
checks for a terminal before textual is imported.
"""
