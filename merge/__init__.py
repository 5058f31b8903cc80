"""judgeforge.merge"""
