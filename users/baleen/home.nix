# Home Manager configuration of baleen. It writes ~/.config/git/config, ~/.config/nvim/init.lua,
# ~/.bashrc and ~/.profile, which the action's `homeManager` check and tests/e2e/dev-env.sh look at.
{ pkgs, ... }:
{
  home.packages = with pkgs; [
    gcc
    gnumake
  ];

  programs.git = {
    enable = true;
    # Home Manager 25.11 renamed userName/userEmail to settings.user.{name,email}.
    settings = {
      user.name = "Baleen";
      user.email = "baleen@nixos-vm.invalid";
      init.defaultBranch = "main";
      pull.ff = "only";
    };
  };

  programs.neovim = {
    enable = true;
    defaultEditor = true; # EDITOR=nvim
    viAlias = true; # `vi` opens Neovim; `vim` stays the system's Vim
    withRuby = false;
    withPython3 = false;
    extraConfig = ''
      set number
      set expandtab shiftwidth=2 tabstop=2
    '';
  };

  programs.bash = {
    enable = true;
    shellAliases = {
      ll = "ls -l";
      gs = "git status --short --branch";
    };
  };

  # No manual page of Home Manager's options (`man home-configuration.nix`): no binary cache has it
  # for this configuration, so every VM build would render it, under emulation too for an aarch64
  # VM on an x86_64 runner, and nobody reads it on the VM. (The HTML and JSON manuals are off by
  # default; tests/modules/ checks all three.)
  manual.manpages.enable = false;

  home.stateVersion = "26.05";
}
