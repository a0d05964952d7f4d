"""Settings for Spindle: environment, .streamlit/secrets.toml and profiles."""
