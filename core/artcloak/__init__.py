"""artcloak: protect artwork from style mimicry and concept learning."""
