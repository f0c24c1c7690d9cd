"""obslink's plugin system and its built-in plugins (registered exactly like third-party ones)."""
