"""digestbot's chat front ends: the neutral command table, renderers and thin platform adapters."""
