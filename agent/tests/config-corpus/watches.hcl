# Agent watches (roster has `roster watch`, not agent-run watches).
watches = [
  {
    type         = "key"
    key          = "config/maintenance"
    handler_type = "script"
    args         = ["/usr/local/bin/maint.sh"]
  },
]
