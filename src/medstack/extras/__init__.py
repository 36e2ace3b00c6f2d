"""Extras around a run: progress bars, the quick-look PNG, the demo stack, the AstroDrizzle
test stack (:mod:`.fltstack`) and the one-time kernel compile (:mod:`.compile`)."""
