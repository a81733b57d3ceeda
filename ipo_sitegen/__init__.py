"""ipo-sitegen: a static site generator whose build is gated by audience.

One Markdown tree becomes several self-contained bundles (public, restricted, internal); nothing
above a bundle's tier may reach it, and every bundle is audited after it is built.
"""

__version__ = "0.1.0"
