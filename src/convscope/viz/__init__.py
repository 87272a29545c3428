"""Pictures of convolutions: kernel grids, feature maps, contact sheets, animations."""
