"""Applications built on the library: training, and (later) image, audio and video tools."""
