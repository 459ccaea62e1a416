"""The engine: images in, protected images and reports out. Imports no front end."""
