"""sb3_ext: what ML-Agents' trainers have and Stable-Baselines3 lacks.

Callbacks and wrappers around SB3 PPO/SAC (GAIL, curiosity, RND, behavioural cloning,
self-play, curricula, parameter samplers) and the ONNX export Unity's inference engine loads.
Each arrives with its own issue; nothing is exported yet.
"""
