"""The app's tabs, in the order they appear: (id, title, "module:Class").

Each tab is a `tui.tabs.base.AppTab` built with no arguments (it reaches the services through
`self.services`); the app imports a tab's module only when it builds the tab.
"""

TABS: list[tuple[str, str, str]] = [
    ("resources", "Resources", "tui.tabs.resources:ResourcesTab"),
    ("dataset", "Dataset", "tui.tabs.dataset:DatasetTab"),
    ("jobs", "Jobs", "tui.tabs.jobs:JobsTab"),
    ("deployments", "Deployments", "tui.tabs.deployments:DeploymentsTab"),
    ("chat", "Chat", "tui.tabs.chat:ChatTab"),
    ("evaluate", "Evaluate", "tui.tabs.evaluate:EvaluateTab"),
]
