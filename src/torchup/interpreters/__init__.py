"""Find Pythons, probe them (a stdlib script run inside each), compute their wheel tags."""
