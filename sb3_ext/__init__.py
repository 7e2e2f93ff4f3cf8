"""sb3_ext: what ML-Agents' trainers have and Stable-Baselines3 lacks.

- ``onnx_export``: SB3 policies as ONNX files with mlagents-learn's interface, which Unity's
  inference engine loads (``onnx_policy_graph`` builds the traced module, ``onnx_interface``
  reads and checks any model's interface without torch).
- ``schedules``: ML-Agents' linear/constant decays as SB3 schedules, and the entropy
  coefficient schedule SB3 lacks.
- ``reward_scale``: a VecEnv wrapper for the extrinsic reward's ``strength``.
- ``algorithms``: algorithms SB3 lacks: ``DiscreteSAC``, ML-Agents' SAC for discrete and
  multi-branch discrete actions with action masks.
- ``networks``: networks SB3 lacks: ML-Agents' visual encoders (``vis_encode_type``) as SB3
  features extractors.
- ``reward_signals``: ML-Agents' curiosity, RND and GAIL/VAIL reward signals for SB3's PPO
  family (a callback, with a value head per signal) and SAC family (replay buffers and a
  callback).
- ``imitation``: ``.demo`` recordings as expert transitions, ML-Agents' behavioral cloning
  (during ``learn`` and as pretraining), and demonstrations in SB3 replay buffers.

- ``self_play``: ML-Agents' ghost training with ELO: ``TeamVecEnv`` (the learning team's
  agents for SB3, frozen snapshots for the other teams) and ``SelfPlayCallback``.

Curricula arrive with their issue.
"""
