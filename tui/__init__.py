"""The Textual app. It sits on top of core; core never imports it."""
