"""The pages' files. A package only so that the wheel ships them as package
data (the project's package-data patterns apply to packages)."""
