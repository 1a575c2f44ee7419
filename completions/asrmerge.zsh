#compdef asrmerge

_asrmerge_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _ASRMERGE_COMPLETE=complete_zsh asrmerge)
}

compdef _asrmerge_completion asrmerge
