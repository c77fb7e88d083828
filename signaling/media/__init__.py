"""The media engine: one aiortc peer per participant and the router that forwards between them."""
