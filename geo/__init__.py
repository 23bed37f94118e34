"""Geography for maps: simplified boundary files, choropleths and heat-map exports."""
