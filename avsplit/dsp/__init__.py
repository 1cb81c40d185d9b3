"""Signal processing between media and models: spectral transforms, windowing (chunking) with
cross-fade, resampling, optical flow, dense trajectories, and the mapping of model-rate masks onto
the full-band sound, whole-window filters. Nothing here knows about a trained model."""
