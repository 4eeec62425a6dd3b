# Placeholder until the storage helper writes it.
function(notifs_embed_migrations target dir function)
endfunction()
