"""Content feature extractors that turn item images, text, video and audio into vectors."""
